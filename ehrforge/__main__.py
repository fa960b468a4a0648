from ehrforge.cli import main

main()
