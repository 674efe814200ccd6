from imarc.cli import main

if __name__ == "__main__":  # CPU workers re-import the main module: never run the CLI there
    main()
